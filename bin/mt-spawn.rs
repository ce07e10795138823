fn main() -> std::process::ExitCode {
    mt::cli::spawn::main()
}
