//! The `retort` command: parse arguments, run, map errors to exit codes.

mod cli;

/// mimalloc instead of the system allocator: candle allocates a fresh buffer for every tensor
/// op, and glibc serves the large ones with mmap/munmap, which made training spend nearly half
/// its time in the kernel (measured in docs/BENCH.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option (its index in `mi_option_t`, the same in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process instead of returning it to the OS a moment later. candle
/// frees and allocates tensors of the same sizes every step, and each returned page came back
/// zeroed by the kernel: a BERT training epoch took 65.7 s with the default and 40.6 s with
/// this, for 4% more peak memory (docs/BENCH.md). `MIMALLOC_PURGE_DELAY` in the environment
/// still wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reading and setting a mimalloc option has no preconditions. The value is only
    // changed when the option at that index holds purge_delay's default (10 ms in mimalloc 2,
    // 1,000 ms in mimalloc 3), so a renumbered enum in a later mimalloc is left alone.
    unsafe {
        if matches!(
            libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            10 | 1000
        ) {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

fn main() {
    keep_freed_memory();
    let code = match cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", e.render());
            e.exit_code()
        }
    };
    std::process::exit(code);
}
