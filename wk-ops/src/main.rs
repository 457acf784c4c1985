//! The `wk-ops` binary: everything lives in the library (`wk_ops::cli`); this only turns the
//! result into an exit code (0 ok, 1 check failed or some target failed, 2 usage or config error).

use std::process::ExitCode;

fn main() -> ExitCode {
    match wk_ops::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            wk_ops::cli::exit_code_for(&e)
        }
    }
}
