-- wrk script: the same signed body each time (the signature covers the body only), with a
-- fresh X-GitHub-Delivery per request so that none is de-duplicated away.
local counter = 0
local prefix = os.getenv("DELIVERY_PREFIX") or tostring(os.time())
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "issues"
wrk.headers["X-Hub-Signature-256"] = os.getenv("SIGNATURE")
wrk.headers["User-Agent"] = "GitHub-Hookshot/bench"

request = function()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. "-" .. counter
  return wrk.format()
end
