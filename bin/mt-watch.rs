fn main() -> std::process::ExitCode {
    mt::cli::watch::main()
}
