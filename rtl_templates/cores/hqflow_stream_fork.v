// hqflow_stream_fork: one stream to N consumers (an AXI-Stream broadcaster), each taking every beat once,
// at its own pace within the beat: consumer k sees valid while the input holds a beat it has not taken
// (done[k] low), and the input beat completes in the cycle every consumer has taken it or takes it then.
//   m_tvalid[k] = s_tvalid && !done[k]
//   s_tready    = AND over k of (m_tready[k] || done[k])
//   done[k]     <- 0 when the beat completes, else done[k] || (m_tvalid[k] && m_tready[k])
// No consumer's valid depends on another's ready (an eager fork): a consumer's handshake logic sees the
// producer's register slice and its own done flag only, not the other consumers across the chip. No data
// storage, no cycle of latency (a beat every consumer is ready for passes in the cycle it arrives).
module hqflow_stream_fork #(parameter integer N = 2, WIDTH = 1) (
    input  wire             clk,
    input  wire             rst,
    input  wire             s_tvalid,
    output wire             s_tready,
    input  wire [WIDTH-1:0] s_tdata,
    input  wire             s_tlast,
    output wire [N-1:0]     m_tvalid,
    input  wire [N-1:0]     m_tready,
    output wire [N*WIDTH-1:0] m_tdata,
    output wire [N-1:0]     m_tlast
);
    initial if (N < 1) $error("hqflow_stream_fork: N %0d", N);
    reg [N-1:0] done;                   // consumer k has taken the current beat
    assign m_tvalid = {N{s_tvalid}} & ~done;
    assign s_tready = &(m_tready | done);
    assign m_tdata = {N{s_tdata}};
    assign m_tlast = {N{s_tlast}};
    always @(posedge clk) begin
        if (rst || (s_tvalid && s_tready)) done <= 0;
        else done <= done | (m_tvalid & m_tready);
    end
    initial done = 0;
endmodule
