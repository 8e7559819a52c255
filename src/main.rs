//! The `retort` command: parse arguments, run, map errors to exit codes.

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
