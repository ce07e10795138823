fn main() -> std::process::ExitCode {
    mt::cli::mail::main()
}
