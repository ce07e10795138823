fn main() -> std::process::ExitCode {
    mt::cli::config::main()
}
