//! The Apertium engine: runs the `apertium` program (no shell) on batches of lines, one
//! process per call, several calls in parallel.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// How to call Apertium.
#[derive(Debug, Clone)]
pub struct Apertium {
    /// The program (`apertium`, or a full path).
    pub program: String,
}

/// The Debian packages that provide a language pair.
pub fn install_hint(from: &str, to: &str) -> String {
    let pair = if from == "eng" {
        format!("eng-{to}")
    } else {
        format!("eng-{from}")
    };
    format!("install it with `apt-get install -y apertium apertium-{pair}`")
}

impl Apertium {
    /// The modes (`eng-spa`, `spa-eng`, ...) the installed Apertium offers; an error that says
    /// how to install Apertium when the program cannot be run.
    pub fn modes(&self) -> Result<Vec<String>> {
        let out = Command::new(&self.program)
            .arg("-l")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                Error::user(format!("cannot run the Apertium program `{}`", self.program))
                    .with_source(e)
                    .with_hint("install it with `apt-get install -y apertium apertium-eng-spa` (add `apertium-eng-cat` for Catalan)")
            })?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && l != "*")
            .collect())
    }

    /// Checks that `from-to` and `to-from` are installed.
    pub fn check_pair(&self, from: &str, to: &str) -> Result<()> {
        let modes = self.modes()?;
        for mode in [format!("{from}-{to}"), format!("{to}-{from}")] {
            if !modes.contains(&mode) {
                return Err(Error::user(format!(
                    "Apertium has no `{mode}` mode (installed: {})",
                    if modes.is_empty() {
                        "none".to_string()
                    } else {
                        modes.join(", ")
                    }
                ))
                .with_hint(install_hint(from, to)));
            }
        }
        Ok(())
    }

    /// Translates `input` (lines ending in `\n`) with `mode`; returns the output text.
    pub fn translate(&self, mode: &str, input: &str) -> std::result::Result<String, String> {
        let mut child = Command::new(&self.program)
            .args(["-u", mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start `{} -u {mode}`: {e}", self.program))?;
        let mut stdin = child.stdin.take().expect("piped");
        // Write from another thread while this one reads, so neither pipe can fill up.
        let output = std::thread::scope(|s| {
            let writer = s.spawn(move || {
                let r = stdin.write_all(input.as_bytes());
                drop(stdin);
                r
            });
            let out = child.wait_with_output();
            (writer.join(), out)
        });
        let out = match output {
            (Ok(Ok(())), Ok(out)) => out,
            (_, Err(e)) => return Err(format!("`apertium -u {mode}` failed: {e}")),
            (Ok(Err(e)), _) => return Err(format!("cannot write to `apertium -u {mode}`: {e}")),
            (Err(_), _) => return Err("the writer thread panicked".into()),
        };
        if !out.status.success() {
            return Err(format!(
                "`apertium -u {mode}` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        String::from_utf8(out.stdout)
            .map_err(|_| format!("`apertium -u {mode}` wrote invalid UTF-8"))
    }
}
