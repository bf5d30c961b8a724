// End-to-end check of the web page served at `/`: type a post, upload an image, click
// Predict, and compare what the page renders with the API's own answer for the same input.
// Usage: node page.mjs BASE_URL IMAGE_PATH SCREENSHOT_PATH [TEXT]
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';

const [base, imagePath, shot, textArg] = process.argv.slice(2);
const text = textArg || 'so i met Kalo Terzu at the station today';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('pageerror', e => consoleErrors.push(String(e)));
  await page.goto(base + '/');
  await page.waitForFunction(() => !document.getElementById('task').textContent.includes('loading'));
  await page.fill('#text', text);
  await page.setInputFiles('#image', imagePath);
  await page.waitForSelector('#preview[src^="data:"]');
  await page.click('#go');
  await page.waitForFunction(() => document.body.dataset.done === '1' || document.getElementById('error').textContent !== '', null, { timeout: 15000 });
  const error = await page.textContent('#error');
  if (error) throw new Error('page shows an error: ' + error);

  // the API's answer for the same post
  const api = await (await fetch(base + '/v1/predict', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text, image: readFileSync(imagePath).toString('base64') }),
  })).json();

  if (api.entities) {
    const marks = await page.$$eval('#text-out mark', ms => ms.map(m => ({ type: m.dataset.type, text: m.childNodes[0].textContent.trim() })));
    const expected = api.entities.map(e => ({ type: e.type, text: e.text }));
    if (process.env.REQUIRE_ENTITY && marks.length === 0) throw new Error('no entity highlighted (the API found ' + expected.length + ')');
    if (JSON.stringify(marks) !== JSON.stringify(expected)) {
      throw new Error('highlighted entities ' + JSON.stringify(marks) + ' differ from the API ' + JSON.stringify(expected));
    }
    const shown = (await page.textContent('#text-out')).replace(/\s+/g, ' ');
    for (const w of api.words) if (!shown.includes(w)) throw new Error('word ' + w + ' missing from the page');
    console.log('entities rendered: ' + JSON.stringify(marks));
  } else {
    const bars = await page.$$eval('#bars .bar', bs => bs.map(b => b.dataset.label));
    const best = await page.$eval('#bars .bar.best', b => b.dataset.label);
    if (best !== api.label) throw new Error('page marks ' + best + ', API says ' + api.label);
    if (bars.length !== Object.keys(api.probs).length) throw new Error('wrong number of bars');
    console.log('bars rendered: ' + bars.join(', '));
  }
  // the page says which modalities were used
  const used = await page.$eval('#modalities', m => m.dataset.used);
  if (used !== api.modalities.join(',')) throw new Error('page shows modalities ' + used + ', API says ' + api.modalities);
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  // the same text without its image: a text-only post, shown as such
  await page.click('#clear-image');
  await page.click('#go');
  await page.waitForFunction(() => document.body.dataset.done === '1' || document.getElementById('error').textContent !== '', null, { timeout: 15000 });
  const error2 = await page.textContent('#error');
  if (error2) throw new Error('page shows an error for the text-only post: ' + error2);
  const usedTextOnly = await page.$eval('#modalities', m => m.dataset.used);
  const absentNote = await page.textContent('#modalities');
  if (usedTextOnly !== 'text' || !absentNote.includes('absent: image')) throw new Error('text-only post shown as "' + absentNote + '" (' + usedTextOnly + ')');
  console.log('modalities rendered: ' + used + ' / ' + usedTextOnly);
  if (consoleErrors.length) throw new Error('page errors: ' + consoleErrors.join('; '));
} catch (e) {
  console.error(String(e && e.stack || e));
  failed = true;
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
