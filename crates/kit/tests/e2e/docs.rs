//! The documentation stays inside the repository: every relative link of every Markdown file
//! names a file (and, with `#…`, a heading) that exists here, and no file the repository ships
//! — docs, configuration, code and its comments — points at a path outside it, so a reader of a
//! clone has everything the docs rely on. And every binary's shell completions and man pages
//! come from its command line.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The repository's root (this crate is `crates/kit`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every file the repository ships, build outputs and local work directories left out.
fn shipped_files(dir: &Path, files: &mut Vec<PathBuf>) {
    const SKIPPED: [&str; 6] = ["target", ".git", "work", "artifacts", "data", "node_modules"];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !SKIPPED.contains(&name.as_str()) {
                shipped_files(&path, files);
            }
        } else {
            files.push(path);
        }
    }
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of `markdown` outside fenced code blocks.
fn prose_lines(markdown: &str) -> impl Iterator<Item = &str> {
    let mut in_code = false;
    markdown.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            return false;
        }
        !in_code
    })
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    prose_lines(markdown)
        .filter(|line| line.starts_with('#'))
        .map(|line| slug(line.trim_start_matches('#').replace('`', "").as_str()))
        .collect()
}

/// The targets of the inline links `[text](target)` of `markdown`, outside code.
fn links(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(markdown) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// `path` without `.` and `..` (the file need not exist yet).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_relative_link_of_the_docs_names_a_file_and_heading_of_the_repository() {
    let root = root();
    let mut files = Vec::new();
    shipped_files(&root, &mut files);
    let markdown: Vec<_> = files.iter().filter(|f| f.extension().is_some_and(|e| e == "md")).collect();
    assert!(markdown.len() >= 10, "the docs were found: {markdown:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown {
        let text = std::fs::read_to_string(file).unwrap();
        let here = file.strip_prefix(&root).unwrap().display().to_string();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
            let linked =
                if path.is_empty() { file.to_path_buf() } else { normalise(&file.parent().unwrap().join(path)) };
            if !linked.starts_with(&root) {
                broken.push(format!("{here}: `{target}` leaves the repository"));
                continue;
            }
            if !linked.exists() {
                broken.push(format!("{here}: `{target}` does not exist"));
                continue;
            }
            if let Some(anchor) = anchor
                && linked.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&linked).unwrap()).contains(anchor)
            {
                broken.push(format!("{here}: `{target}` names no heading of {}", linked.display()));
            }
        }
    }
    assert!(checked >= 50, "the links were found ({checked})");
    assert!(broken.is_empty(), "{} broken link(s):\n{}", broken.len(), broken.join("\n"));
}

#[test]
fn nothing_the_repository_ships_points_outside_it() {
    let root = root();
    let mut files = Vec::new();
    shipped_files(&root, &mut files);
    // Where a reader of a clone cannot follow: the material the kit was designed from, and the
    // machine it was written on.
    // Built from parts, so that this list is not itself a match.
    let outside: Vec<String> =
        [["..", "shared"], ["shared", "reference"], ["/work", "main"], ["/work", "shared"], ["/tmp", "cirun"]]
            .iter()
            .map(|parts| parts.join("/"))
            .collect();
    let mut found = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        for (n, line) in text.lines().enumerate() {
            if let Some(needle) = outside.iter().find(|needle| line.contains(needle.as_str())) {
                found.push(format!("{}:{}: `{needle}`", file.strip_prefix(&root).unwrap().display(), n + 1));
            }
        }
    }
    assert!(files.len() > 100, "the repository was read ({} files)", files.len());
    assert!(found.is_empty(), "paths outside the repository:\n{}", found.join("\n"));
}

/// Each binary's completions and man pages are generated from its own command line: tmp-kit's
/// through the binary, mock-tmp's and tmp-conformance's through theirs.
#[test]
fn every_binary_has_completions_and_a_man_page() {
    use clap::{CommandFactory, Parser};
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tmp-kit")).args(args).output().expect("tmp-kit");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let zsh = run(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef tmp-kit") && zsh.contains("prepare") && zsh.contains("soak"), "{zsh}");
    assert!(run(&["man"]).contains(".TH tmp-kit 1"));
    for (command, sub) in [
        (mock_tmp::cli::Cli::command(), "--print-default-config"),
        (tmp_conformance::cli::Cli::command(), "sign-proxy"),
    ] {
        let name = command.get_name().to_owned();
        let mut script = Vec::new();
        tmp_edge::cli_docs::completions(command.clone(), tmp_edge::cli_docs::Shell::Bash, &mut script);
        assert!(String::from_utf8_lossy(&script).contains(sub), "{name}: {sub}");
        let pages = tmp_edge::cli_docs::man_pages(command).unwrap();
        assert_eq!(pages[0].0, format!("{name}.1"));
    }
    // The flags and subcommands that print them parse.
    assert!(mock_tmp::cli::Cli::try_parse_from(["mock-tmp", "--completions", "bash"]).is_ok());
    assert!(mock_tmp::cli::Cli::try_parse_from(["mock-tmp", "--man"]).is_ok());
    assert!(tmp_conformance::cli::Cli::try_parse_from(["tmp-conformance", "man", "--out", "/tmp/x"]).is_ok());
}
