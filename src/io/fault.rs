//! Crash points for the fault tests. With `RETORT_KILL_AT=STEP:N` in the environment, the
//! process ends at once (`abort`: no destructor runs, no buffer is flushed, as with SIGKILL)
//! the N-th time it reaches a commit step named STEP, or any commit step when STEP is `any`.
//!
//! The steps, in the order a sink reaches them for each part:
//! - `part`: a data part is complete and synced, before its rename;
//! - `rejects`: its rejects file, before the rename;
//! - `journal`: before the journal entry (the commit point) is written;
//! - `manifest`: before `_SUCCESS.json` is written.
//!
//! Unset (always, outside the tests), a step costs one check of a cached value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const KILL_AT_ENV: &str = "RETORT_KILL_AT";

fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var(KILL_AT_ENV).ok()?;
            let (step, n) = v.split_once(':')?;
            Some((step.to_string(), n.parse().ok()?))
        })
        .as_ref()
}

/// Marks commit step `name`; ends the process here when `RETORT_KILL_AT` says so.
pub fn step(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((want, n)) = armed() else {
        return;
    };
    if want == name || want == "any" {
        let hit = HITS.fetch_add(1, Ordering::SeqCst) + 1;
        if hit == *n {
            eprintln!("retort: {KILL_AT_ENV}: ending the process at step `{name}` (hit {hit})");
            std::process::abort();
        }
    }
}
