fn main() -> std::process::ExitCode {
    mt::cli::ps::main()
}
