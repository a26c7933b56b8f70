//! [`UmaStore`] on sled.

use super::*;
use crate::store::uma::*;

impl Expiring for InteractionSession {
    fn exp(&self) -> u64 {
        self.exp
    }
}

pub(super) fn owned_key(owner: &Owner, id: &str) -> Vec<u8> {
    let mut k = owner.to_string().into_bytes();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn owner_prefix(owner: &Owner) -> Vec<u8> {
    let mut k = owner.to_string().into_bytes();
    k.push(0);
    k
}

#[async_trait]
impl UmaStore for SledStore {
    async fn put_pct(&self, pct: &str, record: &PctRecord) -> Result<()> {
        self.insert(&self.db.open_tree("pcts")?, &secret_key(pct), record)
            .await
    }

    async fn get_pct(&self, pct: &str) -> Result<Option<PctRecord>> {
        let r: Option<PctRecord> = Self::get(&self.db.open_tree("pcts")?, &secret_key(pct))?;
        Ok(r.filter(|r| r.exp > unix_now()))
    }

    async fn revoke_pct(&self, pct: &str) -> Result<bool> {
        self.remove(&self.db.open_tree("pcts")?, &secret_key(pct))
            .await
    }

    async fn put_approval(&self, owner: &Owner, request: &ApprovalRequest) -> Result<()> {
        self.insert(
            &self.db.open_tree("approvals")?,
            &owned_key(owner, &request.id),
            request,
        )
        .await
    }

    async fn get_approval(&self, owner: &Owner, id: &str) -> Result<Option<ApprovalRequest>> {
        Self::get(&self.db.open_tree("approvals")?, &owned_key(owner, id))
    }

    async fn list_approvals(&self, owner: &Owner) -> Result<Vec<ApprovalRequest>> {
        self.db
            .open_tree("approvals")?
            .scan_prefix(owner_prefix(owner))
            .values()
            .map(|v| dec(&v?))
            .collect()
    }

    async fn decide_approval(
        &self,
        owner: &Owner,
        id: &str,
        status: ApprovalStatus,
        at: u64,
    ) -> Result<Option<ApprovalRequest>> {
        let tree = self.db.open_tree("approvals")?;
        let key = owned_key(owner, id);
        // Compare-and-swap on the exact stored bytes: of two concurrent decisions only one
        // replaces the pending record.
        loop {
            let Some(old) = tree.get(&key)? else {
                return Ok(None);
            };
            let mut request: ApprovalRequest = dec(&old)?;
            if request.status != ApprovalStatus::Pending {
                return Err(Error::Conflict(format!("request {id} was already decided")));
            }
            request.status = status.clone();
            request.decided_at = Some(at);
            if tree
                .compare_and_swap(&key, Some(old), Some(enc(&request)?))?
                .is_ok()
            {
                self.flush().await?;
                return Ok(Some(request));
            }
        }
    }

    async fn record_rpt(&self, owner: &Owner, rpt: &RptRecord) -> Result<()> {
        self.insert(
            &self.db.open_tree("rpts")?,
            &owned_key(owner, &rpt.jti),
            rpt,
        )
        .await
    }

    async fn list_rpts(&self, owner: &Owner) -> Result<Vec<RptRecord>> {
        let now = unix_now();
        let all: Vec<RptRecord> = self
            .db
            .open_tree("rpts")?
            .scan_prefix(owner_prefix(owner))
            .values()
            .map(|v| dec(&v?))
            .collect::<Result<_>>()?;
        Ok(all.into_iter().filter(|r| r.exp > now).collect())
    }

    async fn take_rpt(&self, owner: &Owner, jti: &str) -> Result<Option<RptRecord>> {
        let tree = self.db.open_tree("rpts")?;
        let Some(bytes) = tree.remove(owned_key(owner, jti))? else {
            return Ok(None);
        };
        self.flush().await?;
        Ok(Some(dec(&bytes)?))
    }

    async fn put_interaction(&self, id: &str, session: &InteractionSession) -> Result<()> {
        self.insert(
            &self.db.open_tree("interactions")?,
            &secret_key(id),
            session,
        )
        .await
    }

    async fn get_interaction(&self, id: &str) -> Result<Option<InteractionSession>> {
        let s: Option<InteractionSession> =
            Self::get(&self.db.open_tree("interactions")?, &secret_key(id))?;
        Ok(s.filter(|s| s.exp > unix_now()))
    }

    async fn take_interaction(&self, id: &str) -> Result<Option<InteractionSession>> {
        self.take(&self.db.open_tree("interactions")?, &secret_key(id))
            .await
    }
}
