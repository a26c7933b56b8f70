fn main() -> std::process::ExitCode {
    uma_host::cli::main()
}
