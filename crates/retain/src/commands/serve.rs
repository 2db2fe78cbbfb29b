//! `retain serve`: the HTTP API and the dashboard over a workspace.

use std::path::PathBuf;
use std::time::Duration;

use retain_data::Workspace;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Operational store URL (sqlite://PATH or postgres://USER@HOST/DB); defaults to the
    /// workspace's `retain.toml`.
    #[arg(long, env = "RETAIN_DATABASE")]
    pub database: Option<String>,
    /// Mark the dashboard's session cookie `Secure` (browsers then send it over HTTPS only):
    /// `auto` does unless --addr is a loopback address; serve other addresses over HTTPS, or
    /// behind a proxy that terminates it.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        env = "RETAIN_SECURE_COOKIES"
    )]
    pub secure_cookies: SecureCookies,
    /// A token that may read /metrics (`Authorization: Bearer TOKEN`, as Prometheus sends
    /// it); without one only admins' sessions may. Best given in the environment.
    #[arg(long, env = "RETAIN_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Seconds a request may take before the server answers 503 `timeout`.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// Do not run the workspace's schedule (`schedule.toml`) in this process: when another
    /// runs it, or `retain cycle` does from cron. Two that both run it are safe (each job
    /// runs in one at a time), only wasteful.
    #[arg(long)]
    pub no_scheduler: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum SecureCookies {
    Auto,
    Always,
    Never,
}

/// The server's options for `addr`.
pub(crate) fn options(
    addr: &str,
    secure_cookies: SecureCookies,
    metrics_token: Option<&str>,
    request_timeout: u64,
) -> retain_server::ServerOptions {
    let mut options = retain_server::ServerOptions::for_addr(addr);
    match secure_cookies {
        SecureCookies::Auto => {}
        SecureCookies::Always => options.secure_cookies = true,
        SecureCookies::Never => options.secure_cookies = false,
    }
    options.metrics_token = metrics_token.filter(|t| !t.is_empty()).map(str::to_owned);
    options.request_timeout = Duration::from_secs(request_timeout);
    options
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    let options = options(
        &args.addr,
        args.secure_cookies,
        args.metrics_token.as_deref(),
        args.request_timeout,
    );
    if !options.secure_cookies && !retain_server::is_loopback(&args.addr) {
        tracing::warn!(
            "the session cookie is not Secure on {}: serve it over HTTPS only with --secure-cookies always",
            args.addr
        );
    }
    let workspace = Workspace::open(&args.dir)?;
    if !args.no_scheduler {
        // Detached: it sleeps between cycles and ends with the process. It looks for the
        // schedule file each cycle, so one written later applies without a restart.
        drop(super::schedule::serve_loop(
            args.dir.clone(),
            args.database.clone(),
        ));
    }
    rt.block_on(async {
        let state = retain_server::AppState::open_with_options(
            &workspace,
            args.database.as_deref(),
            options,
        )
        .await?;
        retain_server::serve(state, &args.addr).await?;
        anyhow::Ok(())
    })
}
