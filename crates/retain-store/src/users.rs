//! Users and their password hashes; each change is audited in the transaction that makes it.

use sqlx::Row;

use crate::Store;
use crate::audit::audit;
use crate::error::{Error, Result};
use crate::records::{Audit, UserRecord};
use crate::sql::{now, query, query_scalar};

impl Store {
    /// Replaces a user's password hash (an unknown name is [`Error::NotFound`]) and audits it.
    pub async fn set_password(&self, name: &str, hash: &str, actor: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let changed = query(self.d, "UPDATE users SET password_hash = ? WHERE name = ?")
            .bind(hash)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(Error::NotFound(format!("user {name:?}")));
        }
        self.audit_user(&mut tx, name, actor, "password").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a user (a name taken is a [`Error::Conflict`]; a name, manager id or branch id
    /// [`UserRecord::check`] refuses is [`Error::Invalid`]) and audits it.
    pub async fn add_user(&self, u: &UserRecord, actor: &str) -> Result<()> {
        u.check().map_err(Error::Invalid)?;
        let mut tx = self.begin().await?;
        let exists: Option<i64> = query_scalar(self.d, "SELECT 1 FROM users WHERE name = ?")
            .bind(&u.name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(Error::Conflict(format!("a user {:?} exists", u.name)));
        }
        query(
            self.d,
            "INSERT INTO users (name, role, manager_id, branch_id, approval_level, password_hash, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.name)
        .bind(&u.role)
        .bind(&u.manager_id)
        .bind(&u.branch_id)
        .bind(u.approval_level)
        .bind(&u.password_hash)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        audit(
            self.d,
            &mut tx,
            "user",
            &u.name,
            &Audit {
                actor,
                action: "add",
                detail: serde_json::json!({
                    "role": u.role, "manager_id": u.manager_id, "branch_id": u.branch_id,
                    "approval_level": u.approval_level,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables a user (no login; the server ends their sessions) or enables them again, and
    /// audits it. An unknown name is [`Error::NotFound`]; doing it twice changes nothing twice.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool, actor: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let was: Option<i64> = query_scalar(self.d, "SELECT disabled FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(was) = was else {
            return Err(Error::NotFound(format!("user {name:?}")));
        };
        if (was == 1) == disabled {
            return Ok(false);
        }
        query(self.d, "UPDATE users SET disabled = ? WHERE name = ?")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let action = if disabled { "disable" } else { "enable" };
        self.audit_user(&mut tx, name, actor, action).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a user and audits it; what they did stays in the audit log and the campaigns
    /// under their name. An unknown name is [`Error::NotFound`].
    pub async fn remove_user(&self, name: &str, actor: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let removed = query(self.d, "DELETE FROM users WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(Error::NotFound(format!("user {name:?}")));
        }
        self.audit_user(&mut tx, name, actor, "remove").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audits `action` on user `name` in `tx`, the transaction that makes the change.
    async fn audit_user(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        name: &str,
        actor: &str,
        action: &str,
    ) -> Result<()> {
        audit(
            self.d,
            tx,
            "user",
            name,
            &Audit {
                actor,
                action,
                detail: serde_json::json!({}),
            },
        )
        .await
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let rows = query(self.d, "SELECT * FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UserRecord {
                    name: r.try_get("name")?,
                    role: r.try_get("role")?,
                    manager_id: r.try_get("manager_id")?,
                    branch_id: r.try_get("branch_id")?,
                    approval_level: r.try_get("approval_level")?,
                    password_hash: r.try_get("password_hash")?,
                    created_at: r.try_get("created_at")?,
                    disabled: r.try_get::<i64, _>("disabled")? == 1,
                })
            })
            .collect()
    }

    /// One user.
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        Ok(self.users().await?.into_iter().find(|u| u.name == name))
    }
}
