"""Trading signals from webhooks (Google Sheets, Telegram, TradingView) and their durable queue.

`intake.receive` verifies and queues one delivery (what `vhc serve` calls); `worker.work_once`
executes due signals through `trading.orders.place_order`; `queue` lists, retries and drops.
"""
