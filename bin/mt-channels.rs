fn main() -> std::process::ExitCode {
    mt::cli::channels::main()
}
