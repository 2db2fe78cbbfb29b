//! The engine setting and the client session of a Ballista cluster.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;

use crate::error::{Error, Result};

/// Where the analytic plans run, as the user names it: `embedded` (DataFusion in the process,
/// the default) or `ballista://HOST:PORT` (a Ballista scheduler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineUrl {
    Embedded,
    Ballista { host: String, port: u16 },
}

impl FromStr for EngineUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<EngineUrl> {
        let bad = |reason: &str| Error::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let url = url.trim();
        if url.is_empty() || url == "embedded" {
            return Ok(EngineUrl::Embedded);
        }
        let Some(address) = url.strip_prefix("ballista://") else {
            return Err(bad(
                "expected `embedded` or `ballista://HOST:PORT` (the scheduler's address)",
            ));
        };
        let address = address.trim_end_matches('/');
        let (host, port) = split_address(address).map_err(|reason| bad(&reason))?;
        Ok(EngineUrl::Ballista { host, port })
    }
}

impl fmt::Display for EngineUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineUrl::Embedded => f.write_str("embedded"),
            EngineUrl::Ballista { host, port } => {
                write!(f, "ballista://{}:{port}", bracketed(host))
            }
        }
    }
}

/// `HOST:PORT`, with a bracketed IPv6 host allowed.
pub(crate) fn split_address(address: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| "expected HOST:PORT".to_owned())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("{host:?} is not a host name or address"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port (1 to 65535)"))?;
    Ok((host.to_owned(), port))
}

/// A host as it appears before `:PORT` in a URL: an IPv6 address in brackets.
pub(crate) fn bracketed(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

/// The client side of a Ballista cluster: sessions whose plans the scheduler runs.
struct Ballista {
    url: String,
    scheduler: String,
}

impl retain_features::engine::Cluster for Ballista {
    fn url(&self) -> &str {
        &self.url
    }

    fn session(&self, config: SessionConfig) -> retain_features::Result<SessionContext> {
        // Two of Ballista 55's planning paths fail on retain's plans and leave the job waiting
        // for ever rather than failing it: its adaptive planner re-planned a warning rule's plan
        // over campaign history into new stages without end, and its stage planner swaps
        // hash-join inputs after DataFusion has built their dynamic filters ("Cannot swap
        // HashJoinExec inputs after dynamic filters have been constructed"). The static
        // planner without dynamic filters runs every plan of the weekly cycle. Uncorrelated
        // scalar subqueries (`period <= (SELECT MAX(period) …)`) are joined as before DataFusion
        // 55, the escape hatch DataFusion keeps for distributed engines: an executor cannot
        // decode the subquery's expression once the stage planner has split it from its
        // `ScalarSubqueryExec`. retain's scalar subqueries are aggregates of one row, for which
        // the join is exact. Every hash join is partitioned: a join that collects its small side
        // into each task emits that side's unmatched rows (an outer join's) from whichever task
        // finishes last in one process, which on a cluster is every task or none: the
        // segmentation's behaviour joined with the scores lost half its subscribers.
        let config = config
            .with_ballista_adaptive_query_planner(false)
            .with_ballista_logical_extension_codec(crate::codec::logical())
            .with_ballista_physical_extension_codec(crate::codec::physical())
            .set_bool("datafusion.optimizer.enable_dynamic_filter_pushdown", false)
            .set_bool(
                "datafusion.optimizer.enable_physical_uncorrelated_scalar_subquery",
                false,
            )
            .set_u64(
                "datafusion.optimizer.hash_join_single_partition_threshold",
                0,
            )
            .set_u64(
                "datafusion.optimizer.hash_join_single_partition_threshold_rows",
                0,
            );
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .build()
            .upgrade_for_ballista(self.scheduler.clone())
            .map_err(|e| {
                retain_features::Error::Internal(format!(
                    "a session on the cluster at {}: {e}",
                    self.url
                ))
            })?;
        Ok(SessionContext::new_with_state(state))
    }
}

/// Makes every later analytic session of this process run on `engine`. The embedded engine needs
/// nothing; a cluster's scheduler is asked nothing until the first plan runs, when an engine
/// that cannot be reached fails the step with the scheduler's address in the error.
pub fn connect(engine: &EngineUrl) -> Result<()> {
    let EngineUrl::Ballista { host, port } = engine else {
        return Ok(());
    };
    let cluster = Ballista {
        url: engine.to_string(),
        scheduler: format!("http://{}:{port}", bracketed(host)),
    };
    retain_features::engine::use_cluster(Arc::new(cluster)).map_err(|reason| Error::BadUrl {
        url: engine.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_urls() {
        assert_eq!("".parse::<EngineUrl>().unwrap(), EngineUrl::Embedded);
        assert_eq!(
            "embedded".parse::<EngineUrl>().unwrap(),
            EngineUrl::Embedded
        );
        assert_eq!(
            "ballista://127.0.0.1:50050".parse::<EngineUrl>().unwrap(),
            EngineUrl::Ballista {
                host: "127.0.0.1".into(),
                port: 50050
            }
        );
        assert_eq!(
            "ballista://[::1]:7000/".parse::<EngineUrl>().unwrap(),
            EngineUrl::Ballista {
                host: "::1".into(),
                port: 7000
            }
        );
        for bad in [
            "df://h:1",
            "ballista://h",
            "ballista://h:0",
            "ballista://h:99999",
            "ballista://:80",
            "ballista://a@b:80",
            "spark://h:7077",
        ] {
            let error = bad.parse::<EngineUrl>().unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }
}
