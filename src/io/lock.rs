//! An exclusive lock on an output folder for the whole of a run, so that two runs (or two sinks
//! of one pipeline) never write into the same folder at once.
//!
//! The lock is an advisory `flock` on a file in the folder (`_LOCK`, or `_LOCK.shard-...` for
//! one shard of a sharded run, so shards of one run can write side by side). The operating
//! system releases it when the process ends, however it ends, so a killed run never leaves a
//! stale lock behind. The holder writes its process id into the file for the error message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{io_error, Error, Result};

/// A held lock on an output folder; released when dropped.
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
    path: PathBuf,
}

impl OutputLock {
    /// Takes the lock named `name` in `dir` (which must exist), or fails at once with an error
    /// that names the process holding it.
    pub fn acquire(dir: &Path, name: &str) -> Result<OutputLock> {
        let path = dir.join(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(format!("cannot open the lock file `{}`", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let who = match holder_pid(&mut file) {
                    Some(pid) => format!("another retort run (pid {pid})"),
                    None => "another retort run".to_string(),
                };
                return Err(
                    Error::runtime(format!("{who} is writing to `{}`", dir.display()))
                        .with_hint("wait for it to finish, or choose another output folder"),
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(io_error(format!("cannot lock `{}`", path.display()), e))
            }
        }
        // The pid is only for messages: failing to write it does not matter.
        let _ = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush());
        Ok(OutputLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid the holder wrote into the lock file. The holder writes it just after taking the lock,
/// so a run that loses a race by microseconds may find the file still empty: it looks again for
/// up to half a second before giving up on naming the holder.
fn holder_pid(file: &mut File) -> Option<u32> {
    for _ in 0..50 {
        let mut holder = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut holder).is_ok() {
            if let Ok(pid) = holder.trim().parse::<u32>() {
                return Some(pid);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutputLock::acquire(dir.path(), "_LOCK").unwrap();
        let err = OutputLock::acquire(dir.path(), "_LOCK").unwrap_err();
        let text = err.render();
        assert!(
            text.contains(&format!(
                "another retort run (pid {}) is writing to",
                std::process::id()
            )),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);
        // Another shard's lock in the same folder is independent.
        let _shard = OutputLock::acquire(dir.path(), "_LOCK.shard-0001-of-0002").unwrap();
        drop(first);
        OutputLock::acquire(dir.path(), "_LOCK").unwrap();
    }
}
