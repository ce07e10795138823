fn main() -> std::process::ExitCode {
    mt::cli::read::main()
}
