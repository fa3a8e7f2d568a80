// Artificial horizon from AttitudeState roll and pitch (degrees).

const PX_PER_DEG = 3;

export function drawHorizon(canvas, att) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, r = Math.min(w, h) / 2;
  ctx.save();
  ctx.clearRect(0, 0, w, h);
  ctx.beginPath();
  ctx.arc(w / 2, h / 2, r - 2, 0, 2 * Math.PI);
  ctx.clip();
  if (!att) {
    ctx.fillStyle = '#2a323d';
    ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = '#a3aebb';  // 5.75:1 on the grey disc
    ctx.font = '16px system-ui';
    ctx.textAlign = 'center';
    ctx.fillText('no attitude', w / 2, h / 2);
    ctx.restore();
    return;
  }
  const roll = (att.Roll || 0) * Math.PI / 180;
  const pitch = att.Pitch || 0;
  ctx.translate(w / 2, h / 2);
  ctx.rotate(-roll);
  ctx.translate(0, pitch * PX_PER_DEG);
  ctx.fillStyle = '#2f6aa8';  // white labels on it at 5.6:1
  ctx.fillRect(-2 * w, -4 * h, 4 * w, 4 * h);
  ctx.fillStyle = '#7a5530';
  ctx.fillRect(-2 * w, 0, 4 * w, 4 * h);
  ctx.strokeStyle = '#fff';
  ctx.fillStyle = '#fff';
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(-2 * w, 0); ctx.lineTo(2 * w, 0);
  ctx.stroke();
  ctx.font = '12px system-ui';
  ctx.textAlign = 'left';
  ctx.lineWidth = 1.5;
  for (let d = -60; d <= 60; d += 10) {
    if (d === 0) continue;
    const y = -d * PX_PER_DEG, half = d % 20 === 0 ? 40 : 20;
    ctx.beginPath();
    ctx.moveTo(-half, y); ctx.lineTo(half, y);
    ctx.stroke();
    if (d % 20 === 0) ctx.fillText(String(d), half + 4, y + 4);
  }
  ctx.restore();
  // Fixed aircraft symbol and roll pointer.
  ctx.save();
  ctx.translate(w / 2, h / 2);
  ctx.strokeStyle = '#ffd23f';
  ctx.lineWidth = 4;
  ctx.beginPath();
  ctx.moveTo(-70, 0); ctx.lineTo(-25, 0); ctx.lineTo(-12, 12);
  ctx.moveTo(70, 0); ctx.lineTo(25, 0); ctx.lineTo(12, 12);
  ctx.stroke();
  ctx.fillStyle = '#ffd23f';
  ctx.beginPath(); ctx.arc(0, 0, 4, 0, 2 * Math.PI); ctx.fill();
  ctx.rotate(-roll);
  ctx.beginPath();
  ctx.moveTo(0, -r + 6); ctx.lineTo(-8, -r + 20); ctx.lineTo(8, -r + 20);
  ctx.closePath(); ctx.fill();
  ctx.restore();
}
