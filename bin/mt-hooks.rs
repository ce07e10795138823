fn main() -> std::process::ExitCode {
    mt::cli::hooks::main()
}
