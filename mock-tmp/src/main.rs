//! Entry point: parse the command line and hand over to [`mock_tmp::cli`].

fn main() -> std::process::ExitCode {
    mock_tmp::cli::main()
}
