fn main() -> std::process::ExitCode {
    mt::cli::status::main()
}
