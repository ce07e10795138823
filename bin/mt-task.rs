fn main() -> std::process::ExitCode {
    mt::cli::task::main()
}
