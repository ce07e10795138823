fn main() -> std::process::ExitCode {
    mt::cli::fake_agent::main()
}
