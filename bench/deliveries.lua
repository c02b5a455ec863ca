-- wrk script: the same signed body each time (the signature covers the body only), with a
-- fresh X-GitHub-Delivery per request so that none is de-duplicated away. The id is a UUID, as
-- GitHub's are and as the webhook requires: the run's random prefix, then the request's number.
local counter = 0
local hex = os.getenv("DELIVERY_PREFIX") or string.format("%032x", os.time())
local prefix = hex:sub(1, 8) .. "-" .. hex:sub(9, 12) .. "-" .. hex:sub(13, 16) .. "-" .. hex:sub(17, 20) .. "-"
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
  wrk.headers["X-GitHub-Delivery"] = prefix .. string.format("%012x", counter)
  return wrk.format()
end
