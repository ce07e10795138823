fn main() -> std::process::ExitCode {
    mt::cli::chat::main()
}
