-- DropIndex
DROP INDEX "Delivery_status_nextAttemptAt_idx";

-- CreateIndex
CREATE INDEX "Delivery_webhookId_status_nextAttemptAt_idx" ON "Delivery"("webhookId", "status", "nextAttemptAt");
