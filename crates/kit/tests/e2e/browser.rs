//! A real, headless Chromium rendering a page the kit writes (the conformance HTML report).
//! Debian's `chromium` package; `.ci/run` installs it. Without it the check is skipped with a
//! note, except under `CI`, where it fails.

use std::path::Path;
use std::process::Command;

/// What the browser made of a page.
pub struct Rendered {
    /// The page's DOM after loading, as the browser serialises it.
    pub text: String,
    /// The size of a PNG screenshot of it.
    pub screenshot_bytes: usize,
}

pub fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()))
        .map(str::to_owned)
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Renders `page` in headless Chromium: its DOM and a screenshot. `None` (with a note) when no
/// Chromium is installed and this is not CI.
pub fn render(page: &Path) -> Option<Rendered> {
    let Some(browser) = chromium() else {
        assert!(!in_ci(), "CI needs Chromium for the browser checks (.ci/run installs Debian's chromium)");
        eprintln!("note: no Chromium on PATH; the browser check of {} is skipped", page.display());
        return None;
    };
    let profile = tempfile::tempdir().expect("a browser profile");
    let screenshot = profile.path().join("page.png");
    let url = format!("file://{}", page.display());
    // The flags keep a headless Chromium off the network it would otherwise try to reach.
    let flags = |extra: &[String]| {
        let mut command = Command::new(&browser);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]);
        command.arg(format!("--user-data-dir={}", profile.path().display()));
        command.args(extra);
        command.arg(&url);
        command.output().expect("chromium runs")
    };
    let dom = flags(&["--dump-dom".to_owned()]);
    assert!(dom.status.success(), "chromium --dump-dom: {}", String::from_utf8_lossy(&dom.stderr));
    let shot = flags(&[format!("--screenshot={}", screenshot.display()), "--window-size=1280,2000".to_owned()]);
    assert!(shot.status.success(), "chromium --screenshot: {}", String::from_utf8_lossy(&shot.stderr));
    let screenshot_bytes = std::fs::metadata(&screenshot).map(|m| m.len() as usize).unwrap_or(0);
    Some(Rendered { text: String::from_utf8_lossy(&dom.stdout).into_owned(), screenshot_bytes })
}
