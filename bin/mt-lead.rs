fn main() -> std::process::ExitCode {
    mt::cli::lead::main()
}
