fn main() -> std::process::ExitCode {
    mt::cli::route::main()
}
