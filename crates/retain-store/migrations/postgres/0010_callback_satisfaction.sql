-- Satisfaction (满意度, 0–10) a callback or a satisfaction survey recorded, for NPS by arm.
ALTER TABLE callbacks ADD COLUMN satisfaction BIGINT CHECK (satisfaction BETWEEN 0 AND 10);
