//! `retain user`: the people who use retain, their roles and passwords.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use retain_campaign::Role;
use retain_data::Workspace;
use retain_store::{Store, UserRecord};

use crate::output;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Sub {
    /// Add a user; the password is read from standard input.
    Add {
        /// Workspace directory.
        #[arg(long, env = "RETAIN_DIR")]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// admin, analyst, approver, manager or store.
        #[arg(long)]
        role: String,
        /// The account manager this user is (a manager sees only their own subscribers).
        #[arg(long)]
        manager_id: Option<String>,
        /// For a branch head with the manager role: the branch whose subscribers they see.
        #[arg(long, conflicts_with = "manager_id")]
        branch_id: Option<String>,
        /// The highest approval level an approver signs (1–3; admins sign every level).
        #[arg(long)]
        approval_level: Option<i64>,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Print one JSON object instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Stop a user from logging in; the server ends their sessions within seconds.
    Disable(NameArgs),
    /// Let a disabled user log in again.
    Enable(NameArgs),
    /// Remove a user; what they did stays in the audit log and the campaigns under their name.
    Remove(NameArgs),
    /// Set a user's password anew (read from standard input), for a user who forgot it; the
    /// sessions they have stay until they expire or the user is disabled.
    ResetPassword {
        #[command(flatten)]
        user: NameArgs,
        /// Read the new password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Every user, without passwords.
    List {
        #[arg(long, env = "RETAIN_DIR")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// The user a change is about.
#[derive(Debug, clap::Args)]
pub(crate) struct NameArgs {
    /// Workspace directory.
    #[arg(long, env = "RETAIN_DIR")]
    dir: PathBuf,
    #[arg(long)]
    name: String,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// A password from standard input, checked as login checks it, and its hash.
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        anyhow::bail!("the password needs at least 8 characters");
    }
    if password.len() > retain_server::MAX_PASSWORD_BYTES {
        anyhow::bail!(
            "the password has more than {} bytes, more than login accepts",
            retain_server::MAX_PASSWORD_BYTES
        );
    }
    retain_server::hash_password(password).map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Runs `change` on the store of `user`'s workspace and prints what became of the user.
fn change_user(
    rt: &tokio::runtime::Runtime,
    user: &NameArgs,
    did: &str,
    change: impl AsyncFnOnce(&Store, &str, &str) -> retain_store::Result<()>,
) -> anyhow::Result<()> {
    retain_store::check_user_name(&user.name).map_err(anyhow::Error::msg)?;
    let workspace = Workspace::open(&user.dir)?;
    rt.block_on(async {
        let store = Store::connect(&workspace.store_url()).await?;
        change(&store, &user.name, &retain_campaign::Actor::local().name).await?;
        anyhow::Ok(())
    })?;
    if user.json {
        return output::print_json(&serde_json::json!({ "user": user.name, "done": did }));
    }
    output::print_text(&format!("user {}: {did}", user.name));
    Ok(())
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    match &args.command {
        Sub::Add {
            dir,
            name,
            role,
            manager_id,
            branch_id,
            approval_level,
            password_stdin: _,
            json,
        } => {
            let role = Role::from_code(role).with_context(|| {
                format!("unknown role {role:?}; roles are admin, analyst, approver, manager, store")
            })?;
            // The store checks them too; here they are refused before the password is read.
            retain_store::check_user_name(name).map_err(anyhow::Error::msg)?;
            if let Some(m) = manager_id {
                retain_store::check_scope_id("--manager-id", m).map_err(anyhow::Error::msg)?;
            }
            if let Some(b) = branch_id {
                retain_store::check_scope_id("--branch-id", b).map_err(anyhow::Error::msg)?;
            }
            if role == Role::Manager && manager_id.is_none() && branch_id.is_none() {
                anyhow::bail!(
                    "a manager needs --manager-id (or --branch-id): it scopes the subscribers they see"
                );
            }
            if role != Role::Manager && branch_id.is_some() {
                anyhow::bail!("only managers are scoped to a branch");
            }
            let level = match (role, approval_level) {
                (Role::Admin, _) => 3,
                (Role::Approver, Some(l)) if (1..=3).contains(l) => *l,
                (Role::Approver, Some(l)) => anyhow::bail!("--approval-level is 1–3, not {l}"),
                (Role::Approver, None) => 1,
                (_, Some(_)) => anyhow::bail!("only approvers have an approval level"),
                (_, None) => 0,
            };
            let hash = read_password()?;
            let workspace = Workspace::open(dir)?;
            let user = UserRecord {
                name: name.clone(),
                role: role.code().to_owned(),
                manager_id: manager_id.clone(),
                branch_id: branch_id.clone(),
                approval_level: level,
                password_hash: hash,
                created_at: String::new(),
                disabled: false,
            };
            rt.block_on(async {
                let store = Store::connect(&workspace.store_url()).await?;
                store
                    .add_user(&user, &retain_campaign::Actor::local().name)
                    .await?;
                anyhow::Ok(())
            })?;
            if *json {
                return output::print_json(&user);
            }
            output::print_text(&format!(
                "user {name} added: {}, approval level {level}",
                role.code()
            ));
            Ok(())
        }
        Sub::Disable(user) => change_user(&rt, user, "disabled", async |store, name, actor| {
            store.set_user_disabled(name, true, actor).await.map(|_| ())
        }),
        Sub::Enable(user) => change_user(&rt, user, "enabled", async |store, name, actor| {
            store
                .set_user_disabled(name, false, actor)
                .await
                .map(|_| ())
        }),
        Sub::Remove(user) => change_user(&rt, user, "removed", async |store, name, actor| {
            store.remove_user(name, actor).await
        }),
        Sub::ResetPassword { user, .. } => {
            retain_store::check_user_name(&user.name).map_err(anyhow::Error::msg)?;
            let hash = read_password()?;
            change_user(&rt, user, "password reset", async |store, name, actor| {
                store.set_password(name, &hash, actor).await
            })
        }
        Sub::List { dir, json } => {
            let workspace = Workspace::open(dir)?;
            let users = rt.block_on(async {
                let store = Store::connect(&workspace.store_url()).await?;
                anyhow::Ok(store.users().await?)
            })?;
            if *json {
                return output::print_json(&serde_json::json!({ "users": users }));
            }
            let mut text = String::new();
            for u in &users {
                let _ = writeln!(
                    text,
                    "{:16} {:9} level {} {}",
                    u.name,
                    u.role,
                    u.approval_level,
                    u.manager_id
                        .as_deref()
                        .map(|m| format!("manager {m}"))
                        .or_else(|| u.branch_id.as_deref().map(|b| format!("branch {b}")))
                        .unwrap_or_default()
                );
            }
            output::print_text(if users.is_empty() {
                "no users yet (retain user add)"
            } else {
                text.trim_end()
            });
            Ok(())
        }
    }
}
