-- wrk script of bench/mitigation/run.sh: normal shop traffic from many clients (a session
-- cookie and a forwarded address each request, the demo shop trusts 127.0.0.1 as its proxy), paced
-- by DELAY_MS per request and connection so that connections * 1000 / DELAY_MS is the offered
-- rate.
local delay_ms = tonumber(os.getenv("DELAY_MS") or "10")
local paths = {
  "/tienda1/index.jsp",
  "/tienda1/publico/productos.jsp",
  "/tienda1/publico/anadir.jsp?id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito",
  "/tienda1/publico/anadir.jsp?id=1&nombre=Queso+Manchego&precio=39&cantidad=2&B1=A%F1adir+al+carrito",
  "/tienda1/publico/autenticar.jsp?modo=entrar&login=choong&pwd=d1se3ci%F3n&remember=off&B1=Entrar",
  "/tienda1/publico/caracteristicas.jsp?id=2",
  "/tienda1/miembros/editar.jsp?modo=registro&login=bob&password=fr1ed&nombre=Bob&apellidos=Ruiz&email=bob%40example.com&dni=12345678Z&direccion=Calle+Mayor+1&ciudad=Madrid&cp=28001&provincia=Madrid&ntc=4111111111111111&B1=Registrar",
}
local n = 0
local thread_tag = nil
function delay() return delay_ms end
-- Each request is a fresh visitor (its own session cookie and forwarded address), as in
-- CSIC 2010, whose normal sessions are one request each: the models learnt that, so
-- thousands of sessions making a request every 0.4 s would themselves be unusual behaviour
-- (principal:recent_calls), and plan would rightly block many of them.
function request()
  n = n + 1
  if thread_tag == nil then thread_tag = math.random(0, 0x7fffffff) end
  local headers = {
    ["Cookie"] = string.format("JSESSIONID=%08X%08X%016X", thread_tag, math.random(0, 0x7fffffff), n),
    ["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254)),
    -- The header set the replayer sends the models to learn from (CSIC 2010's, without Host
    -- and Connection, which the HTTP client sets): headers are recorded arguments, so a
    -- client without them, or with CSIC's "Host: localhost:8080", is a different client.
    ["User-Agent"] = "Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)",
    ["Pragma"] = "no-cache",
    ["Cache-control"] = "no-cache",
    ["Accept"] = "text/xml,application/xml,application/xhtml+xml,text/html;q=0.9,text/plain;q=0.8,image/png,*/*;q=0.5",
    ["Accept-Encoding"] = "x-gzip, x-deflate, gzip, deflate",
    ["Accept-Charset"] = "utf-8, utf-8;q=0.5, *;q=0.5",
    ["Accept-Language"] = "en",
  }
  return wrk.format("GET", paths[1 + n % #paths], headers)
end
