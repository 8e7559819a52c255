//! What a sink finds in its folder before a run: a finished run (up to date, stale, damaged or
//! of another configuration) and the journalled parts of an interrupted one.
//!
//! The rule: a folder is up to date only when its manifest has this run's fingerprint and every
//! file it lists is there with its size (and, with `--verify`, its SHA-256). A folder written
//! with the same configuration from inputs or models that have changed since is stale: it is
//! written again from the start (an interrupted one too, so no output mixes rows made from two
//! versions of a teacher). A folder of another configuration is refused unless `--force`.

use std::collections::HashSet;

use super::part_file::{file_sha256, TMP_PREFIX};
use super::ParquetSink;
use crate::error::{Error, Result};
use crate::io::manifest::{read_json, FileEntry, Manifest, PartRecord};
use crate::stage::RunIdentity;

impl ParquetSink {
    /// Looks at a finished run in the folder: `true` when it is this run and intact. A stale
    /// one (same configuration, other inputs or models) is removed; one of another
    /// configuration is refused unless `--force`.
    pub(super) fn finished_is_current(&self, run: &RunIdentity) -> Result<bool> {
        let manifest_path = self.dir.join(&self.manifest_name);
        if !manifest_path.exists() || run.force {
            return Ok(false);
        }
        let m: Manifest = read_json(&manifest_path)?;
        if m.fingerprint == run.fingerprint {
            self.check_intact(&m, run.verify)?;
            return Ok(true);
        }
        if m.config_fingerprint != run.config_fingerprint {
            return Err(self.refuse(&format!(
                "already holds a finished run of another configuration (`{}` has fingerprint {}, this run has {})",
                self.manifest_name, m.fingerprint, run.fingerprint
            )));
        }
        self.notice("was written from inputs or models that have changed since: writing it again");
        self.remove_ours(&HashSet::new())?;
        Ok(false)
    }

    /// The journalled parts of an interrupted attempt, by index. Parts of another
    /// configuration are refused unless `--force`; parts of this configuration made from
    /// inputs or models that have changed since are dropped (the run starts again).
    pub(super) fn journalled_parts(&self, run: &RunIdentity) -> Result<Vec<PartRecord>> {
        let mut records: Vec<PartRecord> = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.progress_dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = name.starts_with(&self.prefix)
                    && name.contains("part-")
                    && name.ends_with(".json")
                    && !name.starts_with(TMP_PREFIX)
                    && (!self.prefix.is_empty() || !name.starts_with("shard-"));
                if ours {
                    records.push(read_json(&e.path())?);
                }
            }
        }
        records.sort_by_key(|r| r.index);
        let Some(r) = records.iter().find(|r| r.fingerprint != run.fingerprint) else {
            return Ok(records);
        };
        if r.config_fingerprint != run.config_fingerprint && !run.force {
            return Err(self.refuse(&format!(
                "holds an unfinished run of another configuration (part {} has fingerprint {}, this run has {})",
                r.index, r.fingerprint, run.fingerprint
            )));
        }
        if !run.force {
            self.notice(&format!(
                "holds an unfinished run whose inputs or models have changed since (part {} has fingerprint {}, this run has {}): starting again, so the output does not mix the two",
                r.index, r.fingerprint, run.fingerprint
            ));
        }
        Ok(Vec::new())
    }

    /// Whether the data file of a journalled part is intact (its size, and its SHA-256 when
    /// `verify`), so a resumed run may keep it.
    pub(super) fn part_is_intact(&self, r: &PartRecord, verify: bool) -> bool {
        let path = self.dir.join(&r.file);
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        size == Some(r.bytes) && (!verify || file_sha256(&path).is_ok_and(|s| s == r.sha256))
    }

    /// Checks that every file a finished run's manifest lists is there with its size (and its
    /// SHA-256 when `verify`), before the run is called up to date.
    fn check_intact(&self, m: &Manifest, verify: bool) -> Result<()> {
        for f in m.files.iter().chain(&m.rejects) {
            if let Some(problem) = self.file_problem(f, verify)? {
                return Err(self
                    .refuse(&format!(
                        "holds a finished run whose files changed since: `{}` {problem}",
                        f.path
                    ))
                    .with_hint(format!(
                        "rerun with `--force` to write `{}` again, or delete it",
                        self.dir.display()
                    )));
            }
        }
        Ok(())
    }

    /// What is wrong with one listed file, if anything.
    fn file_problem(&self, f: &FileEntry, verify: bool) -> Result<Option<String>> {
        let path = self.dir.join(&f.path);
        let problem = match std::fs::metadata(&path).map(|m| m.len()) {
            Err(_) => "is missing".to_string(),
            Ok(n) if n != f.bytes => {
                format!("has {n} bytes, the manifest says {}", f.bytes)
            }
            Ok(_) if verify => {
                let sha = file_sha256(&path)?;
                if sha == f.sha256 {
                    return Ok(None);
                }
                format!(
                    "does not match its SHA-256 in `{}` (the file has {sha}, the manifest says {})",
                    self.manifest_name, f.sha256
                )
            }
            Ok(_) => return Ok(None),
        };
        Ok(Some(problem))
    }

    /// A line on stderr about what the sink does with its folder.
    fn notice(&self, what: &str) {
        eprintln!("note: output folder `{}` {what}", self.dir.display());
    }

    /// An error refusing the folder, naming it.
    pub(super) fn refuse(&self, what: &str) -> Error {
        Error::user(format!("output folder `{}` {what}", self.dir.display())).with_hint(
            "choose another output folder, delete this one, or pass `--force` to overwrite it",
        )
    }
}
