fn main() -> std::process::ExitCode {
    tmp_conformance::cli::main()
}
