fn main() -> std::process::ExitCode {
    mt::cli::sync::main()
}
