//! Entry point: parse the command line and hand over to [`tmp_adapter::cli`].

fn main() -> std::process::ExitCode {
    tmp_adapter::cli::main()
}
