//! Per-row randomness: every random choice is drawn from an RNG seeded by the pipeline seed,
//! the stage id, the row id and the copy index, never from a stream shared across rows. So the
//! output does not depend on thread count, batch size or sharding.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of a stage: mixes the pipeline seed with the stage id.
pub fn stage_seed(pipeline_seed: u64, stage: &str) -> u64 {
    xxh3_64_with_seed(stage.as_bytes(), pipeline_seed)
}

/// Seed of one row within a stage.
pub fn row_seed(stage_seed: u64, row_id: &str) -> u64 {
    xxh3_64_with_seed(row_id.as_bytes(), stage_seed)
}

/// Seed of one copy of a row.
pub fn copy_seed(row_seed: u64, copy: u32) -> u64 {
    xxh3_64_with_seed(&copy.to_le_bytes(), row_seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_by_every_input() {
        let s = stage_seed(17, "syn");
        assert_ne!(s, stage_seed(18, "syn"));
        assert_ne!(s, stage_seed(17, "syn2"));
        let r = row_seed(s, "a#1");
        assert_ne!(r, row_seed(s, "a#2"));
        assert_ne!(copy_seed(r, 0), copy_seed(r, 1));
        assert_eq!(
            copy_seed(r, 3),
            copy_seed(row_seed(stage_seed(17, "syn"), "a#1"), 3)
        );
    }
}
