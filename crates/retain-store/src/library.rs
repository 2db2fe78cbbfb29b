//! The libraries plans draw on: the offer library, replaced whole from its file, and the
//! versioned plan templates.

use sqlx::Row;

use crate::Store;
use crate::audit::audit;
use crate::error::Result;
use crate::records::{Audit, TemplateRecord};
use crate::sql::{now, parse_json, query, query_scalar};

impl Store {
    /// Replaces the stored offer library with `offers` (id, definition), in one transaction.
    pub async fn replace_offers(&self, offers: &[(String, serde_json::Value)]) -> Result<()> {
        let mut tx = self.begin().await?;
        query(self.d, "DELETE FROM offers")
            .execute(&mut *tx)
            .await?;
        for (id, definition) in offers {
            query(
                self.d,
                "INSERT INTO offers (id, definition, updated_at) VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(definition.to_string())
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The stored offer library, by id.
    pub async fn offers(&self) -> Result<Vec<(String, serde_json::Value)>> {
        let rows = query(self.d, "SELECT id, definition FROM offers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.get::<String, _>(0), parse_json(&r.get::<String, _>(1))?)))
            .collect()
    }

    /// Saves a new version of a plan template; returns the version.
    pub async fn save_template(
        &self,
        name: &str,
        definition: &serde_json::Value,
        actor: &str,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let latest: Option<i64> = query_scalar(
            self.d,
            "SELECT MAX(version) FROM plan_templates WHERE name = ?",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let version = latest.unwrap_or(0) + 1;
        query(self.d,
            "INSERT INTO plan_templates (name, version, definition, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(name)
        .bind(version)
        .bind(definition.to_string())
        .bind(now())
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        audit(
            self.d,
            &mut tx,
            "plan_template",
            name,
            &Audit {
                actor,
                action: "save",
                detail: serde_json::json!({ "version": version }),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Every saved template version.
    pub async fn templates(&self) -> Result<Vec<TemplateRecord>> {
        let rows = query(
            self.d,
            "SELECT * FROM plan_templates ORDER BY name, version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TemplateRecord {
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    definition: parse_json(&r.try_get::<String, _>("definition")?)?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                })
            })
            .collect()
    }
}
