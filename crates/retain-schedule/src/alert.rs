//! Alerts: one JSON object per event, POSTed to the schedule's webhook over HTTP. Plain HTTP
//! only, to a relay inside the operator's network (which may forward to WeCom, DingTalk or
//! mail): the scheduler carries no TLS stack and no credentials.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::file::Alert;

/// A webhook's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Endpoint {
    /// `http://HOST[:PORT][/PATH]`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let refuse = |why: &str| Err(format!("alert.webhook {url:?}: {why}"));
        if url.len() > 2048 {
            return refuse("longer than 2048 bytes");
        }
        let Some(rest) = url.strip_prefix("http://") else {
            return refuse(
                "use http://HOST[:PORT]/PATH (a relay inside the network; https is not spoken)",
            );
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.contains('@') {
            return refuse("credentials do not belong in the URL");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse() {
                Ok(p) => (h, p),
                Err(_) => return refuse("the port is not a number"),
            },
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return refuse("no host");
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return refuse("the path has spaces or control characters");
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_owned()
            },
        })
    }
}

/// POSTs `event` to the webhook, if one is set; the error says why it was not delivered.
pub async fn send(alert: &Alert, event: &serde_json::Value) -> Result<(), String> {
    let Some(url) = &alert.webhook else {
        return Ok(());
    };
    let endpoint = Endpoint::parse(url)?;
    let timeout = Duration::from_secs(alert.timeout_seconds);
    match tokio::time::timeout(timeout, post(&endpoint, event)).await {
        Ok(result) => result.map_err(|e| format!("alert webhook {url}: {e}")),
        Err(_) => Err(format!(
            "alert webhook {url}: no answer within {}s",
            alert.timeout_seconds
        )),
    }
}

async fn post(endpoint: &Endpoint, event: &serde_json::Value) -> Result<(), String> {
    let body = event.to_string();
    let host = if endpoint.host.contains(':') {
        format!("[{}]", endpoint.host)
    } else {
        endpoint.host.clone()
    };
    let mut stream = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {host}:{}\r\nContent-Type: application/json\r\n\
         User-Agent: retain-scheduler\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        endpoint.path,
        endpoint.port,
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // The status line is all that matters; a receiver that sends more is not read further.
    let mut head = [0u8; 256];
    let mut read = 0;
    while read < head.len() {
        let n = stream
            .read(&mut head[read..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 || head[..read + n].contains(&b'\n') {
            read += n;
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&head[..read]);
    let status = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    match status {
        Some(code) if (200..300).contains(&code) => Ok(()),
        Some(code) => Err(format!("answered HTTP {code}")),
        None => Err("no HTTP answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_addresses_are_checked() {
        assert_eq!(
            Endpoint::parse("http://relay:9000/retain/alerts").unwrap(),
            Endpoint {
                host: "relay".into(),
                port: 9000,
                path: "/retain/alerts".into()
            }
        );
        assert_eq!(Endpoint::parse("http://relay").unwrap().port, 80);
        assert_eq!(Endpoint::parse("http://[::1]:81/x").unwrap().host, "::1");
        for bad in [
            "https://relay/x",
            "http://",
            "http://relay:port/x",
            "http://u:p@relay/x",
            "http://relay/a b",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
