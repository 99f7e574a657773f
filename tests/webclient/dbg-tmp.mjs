import { Server } from './lib/server.mjs';
import { launchBrowser, User, sleep, until, inboundFrom } from './lib/browser.mjs';
const server = await new Server().start();
const browser = await launchBrowser();
try {
const a = await User.open(browser, server, 'a'); await a.createMeeting('A');
const m = new URL(a.page.url()).searchParams.get('m');
const b = await User.open(browser, server, 'b', { path: `/?m=${m}` }); await b.joinMeeting('B');
await sleep(3000);
const out = () => b.page.evaluate(async () => { const t = window.meetDebug; const r=[]; const st = await (await import('/main.js').catch(()=>null), null); return null; });
const bout = async () => b.page.evaluate(async () => {
  const pc = window.meetDebug.__pc; return null; });
await b.page.evaluate(() => { window.__sendStats = async () => { const r = []; return r; }; });
const vin = async () => (await inboundFrom(a.page, b.you.userId)).filter(x=>x.kind==='video').map(x=>x.framesDecoded);
console.log('before', await vin());
await b.page.click('#btn-devices');
await until(async () => (await b.page.locator('#dev-camera option').count()) >= 2);
const cams = await b.page.$$eval('#dev-camera option', (os) => os.map((o) => ({ value: o.value, label: o.textContent, selected: o.selected })));
console.log(cams);
await b.page.selectOption('#dev-camera', cams.find(c=>!c.selected).value);
console.log(await b.page.evaluate(() => window.meetDebug.outbound())); for (let i=0;i<4;i++) { await sleep(1000); console.log(i, await vin(), await b.page.evaluate(() => window.meetDebug.outbound())); } for (let i=0;i<0;i++) { await sleep(700); console.log(i, await vin(), await b.page.evaluate(() => { const t = window.meetDebug.localTrack('video'); return [t.label, t.readyState, t.muted, JSON.stringify(t.getSettings())]; })); }
console.log(b.console.join('\n'));
console.log(await b.page.evaluate(() => [...document.querySelectorAll('#toasts .toast')].map(t=>t.textContent)));
} finally { await browser.close(); await server.stop(); }
