fn main() -> std::process::ExitCode {
    mt::cli::pr::main()
}
