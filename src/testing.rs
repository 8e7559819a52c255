//! Test support: what a test needs from the machine, and how a test that cannot run says so.
//!
//! A test that needs WordNet, Apertium, a model asset or Python calls [`available`] first and
//! returns when it says `false`. A missing dependency is then reported as one line,
//! `SKIPPED <test>: <why> (run <what>)`, written to the process's stderr directly: libtest
//! captures `eprintln!` of passing tests, so a skip printed that way would be invisible.
//!
//! With `RETORT_REQUIRE_DEPS=1` (what `make test` sets: it installs every dependency first) a
//! missing dependency is a failure instead, with the same message, so CI cannot pass by
//! skipping. The shared data sets ([`Dep::SharedDatasets`]) are absent on some machines by
//! design and are never required.
//!
//! The library's unit tests and the integration tests (`tests/it/common.rs`) share this one
//! helper.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The environment variable that turns a missing dependency into a test failure.
pub const REQUIRE_DEPS_ENV: &str = "RETORT_REQUIRE_DEPS";

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    /// WordNet 3.0 at `/usr/share/wordnet` (Debian `wordnet-base`).
    WordNet,
    /// The Apertium program with the mode `eng-XXX` for this pivot (`"spa"`, `"cat"`), and
    /// the mode back.
    Apertium(&'static str),
    /// all-MiniLM-L6-v2 in the asset folder (`make assets`).
    MiniLm,
    /// The SmolLM2 GGUF in the asset folder (`make assets`).
    SmolLm2,
    /// `python3` that imports `pyarrow` and `numpy`.
    PyArrow,
    /// A data set under `../shared/datasets/` (relative to the project root), e.g. `"sst2"`.
    /// Never required: some machines do not have it.
    SharedDatasets(&'static str),
}

impl Dep {
    /// Whether the dependency is present on this machine.
    pub fn present(&self) -> bool {
        match self {
            Dep::WordNet => Path::new(crate::augment::wordnet::DEFAULT_WORDNET_DIR)
                .join("data.noun")
                .is_file(),
            Dep::Apertium(pivot) => apertium_modes().is_some_and(|modes| {
                [format!("eng-{pivot}"), format!("{pivot}-eng")]
                    .iter()
                    .all(|m| modes.contains(m))
            }),
            Dep::MiniLm => crate::assets::minilm_dir().is_some(),
            Dep::SmolLm2 => crate::assets::smollm2_gguf().is_some(),
            Dep::PyArrow => Command::new("python3")
                .args(["-c", "import pyarrow, numpy"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            Dep::SharedDatasets(name) => shared_dataset(name).is_dir(),
        }
    }

    /// What is missing, as the end of `SKIPPED <test>: ...`.
    pub fn missing(&self) -> String {
        match self {
            Dep::WordNet => "WordNet 3.0 is not installed at /usr/share/wordnet".into(),
            Dep::Apertium(pivot) => {
                format!("Apertium with the eng-{pivot} pair is not installed")
            }
            Dep::MiniLm => "all-MiniLM-L6-v2 is not in the asset folder".into(),
            Dep::SmolLm2 => "the SmolLM2 GGUF is not in the asset folder".into(),
            Dep::PyArrow => "python3 with pyarrow and numpy is not installed".into(),
            Dep::SharedDatasets(name) => {
                format!(
                    "the data set `{}` is not there",
                    shared_dataset(name).display()
                )
            }
        }
    }

    /// What installs it, as `(run ...)`.
    pub fn install(&self) -> String {
        match self {
            Dep::WordNet => "`make setup-demo` or `apt-get install -y wordnet-base`".into(),
            Dep::Apertium(pivot) => {
                format!("`make setup-test` or `apt-get install -y apertium apertium-eng-{pivot}`")
            }
            Dep::MiniLm | Dep::SmolLm2 => "`make assets`".into(),
            Dep::PyArrow => {
                "`make setup-test` or `python3 -m pip install --user pyarrow numpy`".into()
            }
            Dep::SharedDatasets(_) => {
                "nothing: the shared data sets are not part of the project".into()
            }
        }
    }

    /// Whether `RETORT_REQUIRE_DEPS=1` makes its absence a failure (everything `make test`
    /// installs; not the shared data sets).
    pub fn required_in_ci(&self) -> bool {
        !matches!(self, Dep::SharedDatasets(_))
    }
}

/// `../shared/datasets/NAME` next to the project root.
pub fn shared_dataset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/datasets")
        .join(name)
}

fn apertium_modes() -> Option<Vec<String>> {
    let out = Command::new("apertium")
        .arg("-l")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .collect(),
    )
}

/// Whether `RETORT_REQUIRE_DEPS` is set to something other than `0` or empty.
pub fn deps_required() -> bool {
    std::env::var(REQUIRE_DEPS_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether the running test can use `dep`. When it cannot, says so visibly (see the module
/// docs) and returns `false`, or panics under `RETORT_REQUIRE_DEPS=1`.
#[track_caller]
pub fn available(dep: Dep) -> bool {
    available_for(dep, "")
}

/// [`available`] for one part of a test (`part` is named in the message, e.g. "the `eda`
/// contract"): the test goes on with its other parts when this one is skipped.
#[track_caller]
pub fn available_for(dep: Dep, part: &str) -> bool {
    if dep.present() {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let part = if part.is_empty() {
        String::new()
    } else {
        format!(" ({part})")
    };
    let message = format!(
        "SKIPPED {test}{part}: {} (run {})",
        dep.missing(),
        dep.install()
    );
    if dep.required_in_ci() && deps_required() {
        panic!("{message}; {REQUIRE_DEPS_ENV}=1 makes a missing dependency a failure");
    }
    // Not `eprintln!`: libtest captures that for passing tests.
    let _ = writeln!(std::io::stderr().lock(), "{message}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_data_set_is_reported_and_never_required() {
        let dep = Dep::SharedDatasets("no-such-data-set-anywhere");
        assert!(!dep.present());
        assert!(!dep.required_in_ci());
        // Whatever RETORT_REQUIRE_DEPS says, a shared data set only skips.
        assert!(!available(dep));
        assert!(
            dep.missing().contains("no-such-data-set-anywhere"),
            "{}",
            dep.missing()
        );
    }

    #[test]
    fn every_dependency_says_how_to_install_it() {
        for dep in [
            Dep::WordNet,
            Dep::Apertium("spa"),
            Dep::MiniLm,
            Dep::SmolLm2,
            Dep::PyArrow,
        ] {
            assert!(dep.required_in_ci(), "{dep:?}");
            assert!(dep.install().contains('`'), "{dep:?}: {}", dep.install());
            assert!(!dep.missing().is_empty());
        }
    }

    /// What [`skip_is_visible_and_fails_when_deps_are_required`] runs in a child process.
    #[test]
    #[ignore = "run by skip_is_visible_and_fails_when_deps_are_required"]
    fn probe_a_missing_dependency() {
        if !available(Dep::Apertium("no-such-pivot")) {
            return;
        }
        unreachable!("no Apertium pair is called eng-no-such-pivot");
    }

    /// Runs this test binary again on the probe: a skip is printed although libtest captures
    /// the output of passing tests, and `RETORT_REQUIRE_DEPS=1` turns it into a failure.
    #[test]
    fn skip_is_visible_and_fails_when_deps_are_required() {
        let probe = "testing::tests::probe_a_missing_dependency";
        let run = |required: &str| {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", probe, "--test-threads", "1"])
                .env(REQUIRE_DEPS_ENV, required)
                .output()
                .unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        };
        let line = format!(
            "SKIPPED {probe}: Apertium with the eng-no-such-pivot pair is not installed (run `make setup-test`"
        );
        let (passed, text) = run("0");
        assert!(passed, "{text}");
        assert!(text.contains(&line), "{text}");
        let (passed, text) = run("1");
        assert!(!passed, "{text}");
        assert!(text.contains(&line), "{text}");
        assert!(text.contains("RETORT_REQUIRE_DEPS=1 makes"), "{text}");
    }
}
