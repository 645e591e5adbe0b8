use clap::Parser;

use pgsafe::cli::Cli;
use pgsafe::error::{classify, exit};
use pgsafe::{commands, output, signal};

fn main() {
    let cli = Cli::parse();
    output::init_logging(cli.output.verbose, cli.output.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::print_error(&format!("could not start the runtime: {e}"), None);
            std::process::exit(exit::FAILED);
        }
    };
    let code = runtime.block_on(async {
        let cancel = match signal::cancel_on_signals() {
            Ok(c) => c,
            Err(e) => {
                output::print_error(&format!("could not install signal handlers: {e}"), None);
                return exit::FAILED;
            }
        };
        match commands::run(cli, cancel).await {
            Ok(()) => exit::OK,
            Err(err) => {
                let (code, hint) = classify(&err);
                output::print_error(&format!("{err:#}"), hint.as_deref());
                code
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
