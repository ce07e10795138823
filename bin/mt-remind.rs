fn main() -> std::process::ExitCode {
    mt::cli::remind::main()
}
