//! Batches by token budget: texts of similar length go together (so padding stays small) and
//! each batch holds at most `max_tokens` padded tokens, so the memory a forward pass needs is
//! bounded by the budget rather than by a row count.

/// Groups row indices into batches. Rows are taken shortest first (ties by index); a batch
/// grows while `rows × longest length` stays within `max_tokens` and it has fewer than
/// `max_rows` rows. A row longer than the budget gets a batch of its own. Every index appears
/// exactly once; the grouping depends only on the lengths, so it is deterministic.
pub fn token_batches(lengths: &[usize], max_tokens: usize, max_rows: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so this row is the longest of the batch if it joins.
        let longest = lengths[i].max(1);
        let fits = (current.len() + 1) * longest <= max_tokens && current.len() < max_rows.max(1);
        if !current.is_empty() && !fits {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Padded tokens of a batch: rows × the longest length.
pub fn padded_tokens(lengths: &[usize], batch: &[usize]) -> usize {
    batch.len() * batch.iter().map(|&i| lengths[i]).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_batch_stays_under_the_budget_and_every_row_is_placed_once() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        for budget in [64usize, 512, 4096] {
            let lengths: Vec<usize> = (0..1000)
                .map(|_| {
                    if rng.random::<f64>() < 0.02 {
                        rng.random_range(budget..budget * 2)
                    } else {
                        rng.random_range(1..60)
                    }
                })
                .collect();
            let batches = token_batches(&lengths, budget, 256);
            let mut seen = vec![0u32; lengths.len()];
            for b in &batches {
                assert!(!b.is_empty() && b.len() <= 256);
                for &i in b {
                    seen[i] += 1;
                }
                let padded = padded_tokens(&lengths, b);
                assert!(
                    padded <= budget || b.len() == 1,
                    "budget {budget}: {} rows, {padded} padded tokens",
                    b.len()
                );
            }
            assert!(seen.iter().all(|&n| n == 1));
            // Similar lengths share batches, so padding is a small share of the tokens.
            let real: usize = lengths.iter().filter(|&&l| l <= budget).sum();
            let padded: usize = batches
                .iter()
                .filter(|b| b.len() > 1 || lengths[b[0]] <= budget)
                .map(|b| padded_tokens(&lengths, b))
                .sum();
            assert!(
                padded as f64 <= real as f64 * 1.15,
                "budget {budget}: {padded} padded for {real} real"
            );
        }
    }

    #[test]
    fn batches_depend_only_on_lengths() {
        let lengths = [5, 3, 5, 1, 9, 3];
        assert_eq!(
            token_batches(&lengths, 10, 8),
            vec![vec![3, 1, 5], vec![0, 2], vec![4]]
        );
        assert_eq!(token_batches(&[], 10, 8), Vec::<Vec<usize>>::new());
        assert_eq!(token_batches(&[50], 10, 8), vec![vec![0]]);
        assert_eq!(token_batches(&[1, 1, 1], 100, 2), vec![vec![0, 1], vec![2]]);
    }
}
