fn main() -> std::process::ExitCode {
    tmp_kit::cli::main()
}
