-- Argo CD health of a kubetune FineTuneJob or EvalJob (docs/deploy.md, "Argo CD").
-- Like Argo CD's own batch/v1 Job: Progressing until the job finishes (so sync waves and
-- `argocd app wait --health` wait for it), then Healthy or Degraded (an EvalJob whose verdict is Failed
-- too); Suspended while suspended.
local function condition(status, kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function explain(c)
  if c == nil then
    return ""
  end
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local function is_true(status, kind)
  local c = condition(status, kind)
  return c ~= nil and c.status == "True"
end

local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = status.phase
if phase == "Failed" or is_true(status, "Stalled") then
  hs.status = "Degraded"
  hs.message = explain(condition(status, "Failed") or condition(status, "Stalled"))
elseif phase == "Succeeded" and status.verdict == "Failed" then
  -- An EvalJob that ran but missed its thresholds: a failed quality gate stops the next sync wave.
  hs.status = "Degraded"
  hs.message = "Verdict Failed"
  if status.verdictReasons ~= nil and #status.verdictReasons > 0 then
    hs.message = hs.message .. ": " .. table.concat(status.verdictReasons, "; ")
  end
elseif phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = explain(condition(status, "Succeeded"))
  if status.verdict ~= nil then
    hs.message = hs.message .. " (verdict " .. status.verdict .. ")"
  end
elseif phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = explain(condition(status, "Suspended"))
else
  -- Pending, Running, Restarting: the latest transition's reason and message are on Ready.
  hs.status = "Progressing"
  local why = condition(status, "Waiting")
  if why == nil or why.status ~= "True" then
    why = condition(status, "Ready")
  end
  hs.message = phase
  if why ~= nil then
    hs.message = phase .. " (" .. explain(why) .. ")"
  end
  if status.progress ~= nil and status.progress.percent ~= nil then
    hs.message = hs.message .. ", " .. string.format("%.1f", status.progress.percent) .. "% done"
  end
end
return hs
