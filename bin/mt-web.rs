fn main() -> std::process::ExitCode {
    mt::cli::web::main()
}
