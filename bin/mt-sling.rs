fn main() -> std::process::ExitCode {
    mt::cli::sling::main()
}
