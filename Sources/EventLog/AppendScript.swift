import Drivers

/// The one atomic step of every append: check the facts a decision relied on, drop a
/// duplicate client message, then for each event assign `seq`, chain the hash, XADD and
/// apply its guard-state effects. Redis runs a script alone, so no other append of the
/// partition can come between the check and the write. The script knows no chat rule:
/// the rules are Swift (`Rules.decide`), the script only verifies their facts.
///
/// KEYS: 1 the stream, 2 the chain head, 3... the guard keys the request refers to by index.
/// ARGV[1]: JSON {
///   "f": [[keyIndex, field, expected or false], ...]    facts (false: the field is absent)
///   "d": [keyIndex, field]                              optional client-message key
///   "e": [{"b": body, "h": sha256(body), "s": keyIndex of the room (assign seq) or false,
///          "x": [[op, keyIndex, field, value], ...]}, ...]
/// }
/// ops: "set" (HSET), "incr" (HINCRBY by value), "id" (HSET to this event's entry id).
/// Returns {"ok", id1, json1, id2, json2, ...}, {"dup", id, json} or {"conflict", factIndex}.
let appendScript = RedisScript(
    #"""
    local request = cjson.decode(ARGV[1])
    for i, fact in ipairs(request.f) do
      local value = redis.call('HGET', KEYS[fact[1]], fact[2])
      local expected = fact[3]
      if expected == false then
        if value ~= false then return {'conflict', tostring(i)} end
      elseif value ~= expected then
        return {'conflict', tostring(i)}
      end
    end
    if request.d then
      local existing = redis.call('HGET', KEYS[request.d[1]], request.d[2])
      if existing then
        local entries = redis.call('XRANGE', KEYS[1], existing, existing)
        if #entries == 1 then return {'dup', existing, entries[1][2][2]} end
      end
    end
    local result = {'ok'}
    local head = redis.call('GET', KEYS[2]) or '0000000000000000000000000000000000000000'
    for _, event in ipairs(request.e) do
      local seqText = ''
      local suffix = ''
      if event.s then
        seqText = tostring(redis.call('HINCRBY', KEYS[event.s], 'seq', 1))
        suffix = ',"seq":' .. seqText
      end
      local hash = redis.sha1hex(head .. event.h .. seqText)
      local json = event.b .. suffix .. ',"prevHash":"' .. head .. '","hash":"' .. hash .. '"}'
      local id = redis.call('XADD', KEYS[1], '*', 'event', json)
      for _, op in ipairs(event.x) do
        if op[1] == 'set' then
          redis.call('HSET', KEYS[op[2]], op[3], op[4])
        elseif op[1] == 'incr' then
          redis.call('HINCRBY', KEYS[op[2]], op[3], op[4])
        elseif op[1] == 'id' then
          redis.call('HSET', KEYS[op[2]], op[3], id)
        end
      end
      head = hash
      result[#result + 1] = id
      result[#result + 1] = json
    end
    redis.call('SET', KEYS[2], head)
    return result
    """#)
