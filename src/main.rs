//! The `retort` command: parse arguments, run, map errors to exit codes.

/// mimalloc instead of the system allocator: candle allocates a fresh buffer for every tensor
/// op, and glibc serves the large ones with mmap/munmap, which made training spend nearly half
/// its time in the kernel (measured in docs/BENCH.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let code = match retort::cli::run(std::env::args_os()) {
        Ok(code) => code,
        Err(e) => {
            eprint!("{}", e.render());
            e.exit_code()
        }
    };
    std::process::exit(code);
}
