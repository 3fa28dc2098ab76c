//! Shell completions and man pages for every binary of the kit, generated from its clap
//! definition — so they cannot disagree with what the binary accepts. Each binary offers them as
//! `completions SHELL` and `man [--out DIR]` (mock-tmp, which has no subcommands, as
//! `--completions SHELL` and `--man`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use clap_complete::Shell;

/// The two subcommands every binary with subcommands offers, flattened into its own:
/// `#[command(flatten)] Docs(tmp_edge::cli_docs::DocsCommand)`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DocsCommand {
    /// Prints the shell completion script, e.g. `completions bash > /etc/bash_completion.d/NAME`
    /// (also zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Prints the man page; with `--out DIR`, writes one per command and subcommand there.
    Man {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

impl DocsCommand {
    /// Runs it for `command`, the binary's own command line (`Cli::command()`).
    pub fn run(self, command: clap::Command) -> ExitCode {
        let name = command.get_name().to_owned();
        match self {
            DocsCommand::Completions { shell } => {
                completions(command, shell, &mut std::io::stdout());
                ExitCode::SUCCESS
            }
            DocsCommand::Man { out } => match write_man_pages(command, out.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{name}: {e:#}");
                    ExitCode::FAILURE
                }
            },
        }
    }
}

/// The completion script of `command` for `shell`, as the shell's completion directory takes it.
pub fn completions(mut command: clap::Command, shell: Shell, out: &mut dyn Write) {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, out);
}

/// One man page per command and subcommand: `tmp-adapter.1`, `tmp-adapter-outbox.1`,
/// `tmp-adapter-outbox-retry.1`, … (file name, roff text).
pub fn man_pages(command: clap::Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut command = command;
    command.build();
    let mut pages = Vec::new();
    let name = command.get_name().to_owned();
    collect(&command, &name, &name, &mut pages)?;
    Ok(pages)
}

/// `name` names the page (`tmp-kit-check`), `usage` is how it is typed (`tmp-kit check`).
fn collect(
    command: &clap::Command,
    name: &str,
    usage: &str,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    let page = command.clone().name(name.to_owned()).bin_name(usage.to_owned());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page).render(&mut roff)?;
    pages.push((format!("{name}.1"), roff));
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        collect(sub, &format!("{name}-{}", sub.get_name()), &format!("{usage} {}", sub.get_name()), pages)?;
    }
    Ok(())
}

/// `man [--out DIR]`: the main page to standard output, or every page written into `dir` (made
/// if missing), each path printed. For `man 1 tmp-adapter`, put `dir` on `MANPATH`'s `man1`.
pub fn write_man_pages(command: clap::Command, dir: Option<&Path>) -> anyhow::Result<()> {
    let pages = man_pages(command)?;
    match dir {
        None => {
            let (_, main) = pages.first().ok_or_else(|| anyhow::anyhow!("no man page"))?;
            std::io::stdout().write_all(main)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot make {}: {e}; pick a directory you may write", dir.display()))?;
            for (file, roff) in &pages {
                let path: PathBuf = dir.join(file);
                std::fs::write(&path, roff).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                println!("{}", path.display());
            }
        }
    }
    Ok(())
}
